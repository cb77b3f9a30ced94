"""The image commands of the runtime CLI (login, logout, pull, push, images, rmi, tag, save, load)."""
