"""AI camera box: POST /hooks/ai-camera/{token}; a heartbeat is answered with the camera's
configuration. See devicegate.vendors.ai_camera.
"""

from devicegate.ingest.handlers import webhook_handler

lambda_handler = webhook_handler("ai-camera")
