"""The ``workflowkit`` command line."""
