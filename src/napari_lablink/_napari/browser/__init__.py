"""The "Lablink browser" dock widget: server profiles, listings, opening."""
