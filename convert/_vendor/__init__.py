"""Third-party generated code; see each file's header for origin and licence."""
