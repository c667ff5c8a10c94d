"""The MIBItracker stand-in: the REST routes, JWT login and signed storage URLs over loopback."""
