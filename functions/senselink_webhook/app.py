"""SenseLink pushes: POST /hooks/senselink/{token}, Event Subscription bodies and WebSocket frames
forwarded by `devicegate senselink-bridge`. See devicegate.vendors.senselink.
"""

from devicegate.ingest.handlers import webhook_handler

lambda_handler = webhook_handler("senselink")
