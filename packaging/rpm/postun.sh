# msiproxy %postun: let a running systemd forget the removed or replaced unit file.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
