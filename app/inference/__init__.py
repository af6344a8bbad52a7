"""Inference: checkpoints loaded and checked (registry), the scripted step loop (engine), tasks and
batches (sampling), micro-batching (policy, batching). Pure torch and asyncio: no FastAPI here."""
