#!/bin/sh
# Outlives any time limit.
echo "going to sleep"
sleep 100000
