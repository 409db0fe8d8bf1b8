"""`incidents audit`: every incident execution that ended other than closed, or runs past its deadlines
(issue 5 fills this in)."""

from __future__ import annotations
