"""Face front end: detection, 478 landmarks, crop/align, face mask, coarse landmark face."""
