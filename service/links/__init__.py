"""Links (tracking URLs) and promo codes."""
