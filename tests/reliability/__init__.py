"""The reliability suite: hostile mail, hostile servers, crashes (issue 15)."""
