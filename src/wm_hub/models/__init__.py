"""Model families, one sub-package each: configuration_<family>.py, modeling_<family>.py, pipeline_<family>.py."""
