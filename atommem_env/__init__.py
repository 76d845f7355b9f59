"""atommem: Gymnasium environments for learnable agent memory with atomic CRUD operations."""
