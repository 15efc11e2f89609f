"""The Device Adapter: hardware's way in (one bidirectional gRPC stream per device)."""
