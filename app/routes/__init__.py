"""One router per resource; `app.main` wires them."""
