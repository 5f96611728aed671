"""The run store: stored runs and scenarios, their manifests, and reading them back."""
