"""The host side: pull images, unpack layers safely, run containers through runc, commit and push."""
