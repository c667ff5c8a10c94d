"""The widgets' one idiom for background work, on real threads and a real Qt event loop."""

from __future__ import annotations

import threading

import pytest
from napari.utils.notifications import notification_manager

from napari_lablink._napari.workers import Task, Workers, describe
from napari_lablink.client.errors import ConfigurationError

pytestmark = pytest.mark.viewer

WAIT_MS = 10_000


@pytest.fixture
def workers(qapp):
    workers = Workers()
    yield workers
    workers.close(wait=True)


def test_the_result_comes_back_on_the_qt_thread(qtbot, workers: Workers) -> None:
    seen: list[tuple[str, object, bool]] = []

    def job(task: Task) -> str:
        return threading.current_thread().name

    workers.start(
        job,
        done=lambda name: seen.append(("done", name, _on_main())),
        finished=lambda: seen.append(("finished", None, _on_main())),
    )
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=WAIT_MS)
    (_, worker_thread, done_on_main), finished = seen
    assert worker_thread != threading.main_thread().name and done_on_main
    assert finished == ("finished", None, True)
    assert workers.idle


def test_an_exception_comes_back_as_itself_not_as_a_napari_traceback(
    qtbot, workers: Workers
) -> None:
    notifications: list[object] = []
    notification_manager.notification_ready.connect(notifications.append)
    errors: list[Exception] = []
    problem = ConfigurationError("no such server", hint="add a profile")

    def job(task: Task) -> None:
        raise problem

    workers.start(job, done=lambda _: pytest.fail("done after a failure"), failed=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert errors == [problem]
    assert describe(problem) == str(problem)
    qtbot.wait(50)  # napari would notify from the worker's own signal, queued like ours
    notification_manager.notification_ready.disconnect(notifications.append)
    assert notifications == []


def test_describe_names_a_bug_and_hides_secrets() -> None:
    message = describe(KeyError("token s3cr3t-value"), secrets=["s3cr3t-value"])
    assert message == "unexpected KeyError: 'token ***'"


def test_progress_and_cancel(qtbot, workers: Workers) -> None:
    reports: list[tuple[int, int, bool]] = []
    errors: list[Exception] = []
    started = threading.Event()

    def job(task: Task) -> None:
        task.report(1, 3)
        started.set()
        if not task.cancelled.wait(WAIT_MS / 1000):
            raise AssertionError("never cancelled")
        raise InterruptedError("stopped as asked")

    task = workers.start(
        job,
        failed=errors.append,
        progress=lambda done, total: reports.append((done, total, _on_main())),
    )
    assert started.wait(WAIT_MS / 1000) and task.running
    task.cancel()
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert reports == [(1, 3, True)]
    assert isinstance(errors[0], InterruptedError) and not task.running


def test_serial_jobs_run_one_after_another_in_order(qtbot, qapp) -> None:
    workers = Workers(serial=True)
    order: list[str] = []
    gate = threading.Event()

    def first(task: Task) -> None:
        gate.wait(WAIT_MS / 1000)
        order.append("first")

    workers.start(first)
    workers.start(lambda task: order.append("second"))
    assert not workers.idle
    gate.set()
    qtbot.waitUntil(lambda: workers.idle, timeout=WAIT_MS)
    assert order == ["first", "second"]
    workers.close()


def test_closing_cancels_drops_callbacks_and_discards_results(qtbot, qapp) -> None:
    workers = Workers(serial=True)
    gate = threading.Event()
    delivered: list[object] = []
    discarded: list[object] = []
    calls: list[object] = []
    relay = workers.on_main(calls.append)

    def running(task: Task) -> str:
        gate.wait(WAIT_MS / 1000)
        return "connection"

    task = workers.start(running, done=delivered.append, discard=discarded.append)
    waiting = workers.start(lambda task: delivered.append("never started"))
    workers.close()
    assert task.cancelled.is_set() and waiting.cancelled.is_set() and not waiting.running
    relay("after close")
    gate.set()
    qtbot.waitUntil(lambda: discarded == ["connection"], timeout=WAIT_MS)
    qapp.processEvents()
    assert delivered == [] and calls == []
    late = workers.start(lambda task: delivered.append("late"))
    assert late.cancelled.is_set() and not late.running and delivered == []


def test_on_main_runs_a_slot_on_the_qt_thread_from_any_thread(qtbot, workers: Workers) -> None:
    calls: list[tuple[int, bool]] = []
    relay = workers.on_main(lambda n: calls.append((n, _on_main())))
    threads = [threading.Thread(target=relay, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    qtbot.waitUntil(lambda: len(calls) == 3, timeout=WAIT_MS)
    assert sorted(calls) == [(0, True), (1, True), (2, True)]


def _on_main() -> bool:
    return threading.current_thread() is threading.main_thread()
