"""Shared, torch-free: exit codes and the one error line, the atomic writer, the token plan, run locks."""
