"""Patterns a client's strings must match, defined once for the API, the store and workers."""

# ``auto`` picks cuda, then mps, then cpu; an index pins one GPU.
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d{1,2})?)$"
# An alias is a name, never a path or a number, so it cannot be mistaken for a job id.
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
# A job tag: a short word, and never a double quote, so a tag filter can match the JSON text.
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/+-]{0,31}$"
