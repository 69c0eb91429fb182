"""KPI targets per program or partner, and the report of actuals against them."""
