"""bekb inside other frameworks; each integration is a submodule imported only when used."""
