"""imgsearch: find images by image, text, both, several examples or item."""
