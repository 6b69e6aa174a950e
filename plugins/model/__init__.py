"""The threat model. Only its learner module imports torch, when the plugin is built."""
