"""Modal screens: run input, human input, fork editor, break condition, help, errors."""
