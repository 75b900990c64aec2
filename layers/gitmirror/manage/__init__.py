"""Management: create, change and sync mirrors (the API and the CLI), and the schedule."""
