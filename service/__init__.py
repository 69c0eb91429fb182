"""Self-hosted affiliate and referral tracking service."""
