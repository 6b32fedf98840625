"""capsnet-serve HTTP service: FastAPI routes over a micro-batched CapsNet."""
