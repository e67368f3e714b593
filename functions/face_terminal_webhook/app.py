"""Face-recognition terminal event push: POST /hooks/face-terminal/{token}[?device=SERIAL];
`device` names the terminal for its alarms (they carry no serial). See devicegate.vendors.face_terminal.
"""

from devicegate.ingest.handlers import webhook_handler

lambda_handler = webhook_handler("face-terminal")
