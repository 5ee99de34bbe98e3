"""The trade-name registry's HTTP face: the registry's handlers (`registry.py`), the
administrators' policy endpoints (`policy.py`), their request models (`models.py`) and
their OpenAPI description (`openapi.py`)."""
