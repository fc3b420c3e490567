"""The Textual TUI. Only this package imports Textual; the core never does."""
