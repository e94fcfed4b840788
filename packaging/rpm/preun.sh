# msiproxy %preun ($1: 0 = erase, 1 = upgrade): on erase, stop and disable the service.
# The %config(noreplace) files stay behind as *.rpmsave when they were edited.
unit=msiproxy.service
if [ "$1" -eq 0 ]; then
	if [ -d /run/systemd/system ]; then
		systemctl stop "$unit" >/dev/null 2>&1 || :
	fi
	systemctl --no-reload disable "$unit" >/dev/null 2>&1 || :
fi
