"""gitmirror: GitLab-grade push mirroring of git repositories on AWS Lambda."""

__version__ = "0.1.0"
