"""``napari-lablink``: run the stand-in servers and the demo, log in to Arkitekt deployments.

Subcommands import what they need when they run, so ``napari-lablink --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    if args.kind == "mikro":
        from napari_lablink.testing.serve import serve_mikro

        return serve_mikro(port=args.port, demo=args.demo, faults=args.faults)
    if args.kind == "arkitekt":
        from napari_lablink.testing.arkitekt.serve import serve_arkitekt

        return serve_arkitekt(port=args.port, demo=args.demo, auto_approve=args.auto_approve)
    from napari_lablink.testing.serve import serve_tracker

    return serve_tracker(port=args.port, demo=args.demo, size=args.size, faults=args.faults)


def _fault_spec(value: str) -> str:
    """Checked when the command line is read, so a typo is a usage error, not a traceback."""
    from napari_lablink.testing.faults import parse_spec

    try:
        parse_spec(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _demo(args: argparse.Namespace) -> int:
    from napari_lablink._napari.demo import run_demo

    return run_demo(screenshot=args.screenshot)


def _login(args: argparse.Namespace) -> int:
    from functools import partial

    from napari_lablink.client.arkitekt.deployments import console_prompt, deployments
    from napari_lablink.client.errors import LablinkError

    try:
        session = deployments.login(
            args.host, prompt=partial(console_prompt, browser=not args.no_browser)
        )
    except LablinkError as error:
        print(f"napari-lablink login: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("napari-lablink login: cancelled", file=sys.stderr)
        return 130
    configuration = session.configuration
    print(f"Logged in to {configuration.deployment_name} ({session.endpoint.label}).")
    for key, service in configuration.services.items():
        print(f"  {key}: {service.url}")
    session.close()
    return 0


def _logout(args: argparse.Namespace) -> int:
    from napari_lablink.client.arkitekt.deployments import deployments

    if deployments.logout(args.host):
        print(f"Logged out of {args.host}.")
        return 0
    print(f"napari-lablink logout: no login is stored for {args.host}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-lablink",
        description="Stand-in lab servers, the napari-lablink demo, Arkitekt logins.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run a stand-in server in the foreground (prints one JSON line, Ctrl-C stops it)",
    )
    serve.add_argument("kind", choices=["mikro", "tracker", "arkitekt"], help="which server")
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    serve.add_argument("--demo", action="store_true", help="seed it with demo images")
    serve.add_argument(
        "--size", type=int, default=512, help="tracker demo image size in pixels (512 or 1024)"
    )
    serve.add_argument(
        "--auto-approve",
        action="store_true",
        help="arkitekt: approve every login at once, as if a user clicked Approve",
    )
    serve.add_argument(
        "--faults",
        default="",
        metavar="KIND=P,...",
        type=_fault_spec,
        help="mikro, tracker: misbehave on purpose, e.g. 503=0.1,drop=0.1,slow=0.1,lost=0.1 "
        "(503: Service Unavailable; drop: hang up unanswered; slow: answer late; lost: act, "
        "then hang up unanswered)",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo", help="start the stand-in servers and open napari on their demo images"
    )
    demo.add_argument(
        "--screenshot",
        metavar="PATH",
        help="wait until everything has loaded, save a screenshot of the window and exit",
    )
    demo.set_defaults(run=_demo)

    login = commands.add_parser(
        "login",
        help="register napari-lablink with an Arkitekt deployment (approve it in a browser)",
    )
    login.add_argument("host", help="the deployment: lab.example.org or http://HOST:PORT")
    login.add_argument(
        "--no-browser", action="store_true", help="print the approval URL, do not open it"
    )
    login.set_defaults(run=_login)
    logout = commands.add_parser(
        "logout", help="forget the login of an Arkitekt deployment (stored tokens included)"
    )
    logout.add_argument("host", help="the deployment, as given to login")
    logout.set_defaults(run=_logout)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
