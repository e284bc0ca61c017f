"""The gRPC server scaffold every service uses: auth, errors, metrics, health, reflection."""
