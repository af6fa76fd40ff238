"""The command lines: one module per command, on the key=value grammar of ``apps.cli``."""
