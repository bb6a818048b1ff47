"""``python -m mp3fix``: the same CLI as the ``mp3fix`` command."""

from mp3fix.cli import run

if __name__ == "__main__":
    run()
