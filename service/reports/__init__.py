"""Reports: partnership performance (clicks, conversions, revenue, commission) from rollups."""
