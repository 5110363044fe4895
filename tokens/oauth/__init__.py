"""The OAuth 2.0 side: token (RFC 6749 §4.4), revocation (RFC 7009), introspection (RFC 7662)."""
