"""The partner program: applications, deal registration, disputes, adjustments, click
bounties, KPI targets and their report."""
