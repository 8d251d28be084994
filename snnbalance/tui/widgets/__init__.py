"""The TUI's widgets and dialogs, one module each."""
