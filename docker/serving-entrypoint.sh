#!/bin/sh
# Build the bento from the registry's champion, then serve it (see serving.Dockerfile).
# Before the first promotion there is no champion: exit non-zero, and compose restarts the container later.
set -eu
astrospect deploy
exec astrospect serve
