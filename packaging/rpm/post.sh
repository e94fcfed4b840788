# msiproxy %post ($1: 1 = install, 2 = upgrade): enable and start, or restart on upgrade.
# Same behaviour as the .deb; systemd is only asked to act when it is the running init.
unit=msiproxy.service
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	# Works offline (creates the wants/ link), so images built with the package get it enabled.
	systemctl enable "$unit" >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl start "$unit" >/dev/null 2>&1 || :
	fi
elif [ -d /run/systemd/system ]; then
	systemctl try-restart "$unit" >/dev/null 2>&1 || :
fi
