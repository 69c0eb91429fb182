"""Applications to join a program: a public form, approved or rejected by an admin."""
