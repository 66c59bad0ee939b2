"""LMTP (RFC 2033): the session protocol as a sans-IO state machine (`protocol`)."""
