"""Pages for people: the answers a browser gets (thank-you and error pages for site forms)."""
