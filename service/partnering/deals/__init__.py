"""Deal registration: a partner claims a prospective customer against channel conflict."""
