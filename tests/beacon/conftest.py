from host_tools import fw

fw.ensure_firmware_importable()
