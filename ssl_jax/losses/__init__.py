"""Losses of self-, semi- and weakly supervised learning as pure functions (re-exported below)."""
