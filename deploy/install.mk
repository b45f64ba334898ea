# make install / make uninstall, included at the end of the Makefile.
#
#   make install   [PREFIX=/usr/local] [DESTDIR=]
#   make uninstall [PREFIX=/usr/local] [DESTDIR=]
#
# Layout (PREFIX=/usr/local):
#   /usr/local/sbin/edgeplane-agent                  the daemon
#   /usr/local/bin/edgeplane                         the CLI
#   /usr/local/lib/edgeplane/bpf/*.bpf.o             BPF objects, for inspection with bpftool
#                                                    (the binaries embed them; nothing loads these)
#   /usr/local/lib/systemd/system/edgeplane-agent.service
#   /usr/local/share/man/man8/edgeplane-agent.8, edgeplane.8
#   /etc/edgeplane/config.yaml                       default config; an existing one is never
#                                                    overwritten (config.yaml.default goes beside it)
#
# The unit goes to $(PREFIX)/lib/systemd/system for PREFIX /usr and /usr/local
# (both on systemd's unit search path) and to /etc/systemd/system otherwise.
# The config lives in /etc whatever the PREFIX (SYSCONFDIR=... to change).
# Every directory variable can be overridden on the command line.
# deploy/Dockerfile runs `make install PREFIX=/usr` into its image; the Helm
# chart runs /usr/sbin/edgeplane-agent.

EP_PREFIX  := $(patsubst %/,%,$(PREFIX))
SBINDIR    ?= $(EP_PREFIX)/sbin
BINDIR     ?= $(EP_PREFIX)/bin
EP_LIBDIR  ?= $(EP_PREFIX)/lib/edgeplane
MANDIR     ?= $(EP_PREFIX)/share/man
SYSCONFDIR ?= /etc
ifneq ($(filter /usr /usr/local,$(EP_PREFIX)),)
UNITDIR    ?= $(EP_PREFIX)/lib/systemd/system
else
UNITDIR    ?= /etc/systemd/system
endif

EP_UNIT    := edgeplane-agent.service
EP_MANS    := edgeplane-agent.8 edgeplane.8
EP_CFG_SRC := deploy/etc/config.yaml
EP_CFG     := $(DESTDIR)$(SYSCONFDIR)/edgeplane/config.yaml

install: all
	install -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(EP_LIBDIR)/bpf \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/edgeplane
	install -m 0755 $(BUILD)/edgeplane-agent $(DESTDIR)$(SBINDIR)/edgeplane-agent
	install -m 0755 $(BUILD)/edgeplane $(DESTDIR)$(BINDIR)/edgeplane
	install -m 0644 $(BPF_OBJS) $(DESTDIR)$(EP_LIBDIR)/bpf/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		deploy/systemd/$(EP_UNIT).in >$(DESTDIR)$(UNITDIR)/$(EP_UNIT).tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/$(EP_UNIT).tmp
	mv -f $(DESTDIR)$(UNITDIR)/$(EP_UNIT).tmp $(DESTDIR)$(UNITDIR)/$(EP_UNIT)
	install -m 0644 $(addprefix docs/man/,$(EP_MANS)) $(DESTDIR)$(MANDIR)/man8/
	@if [ -e "$(EP_CFG)" ] && ! cmp -s $(EP_CFG_SRC) "$(EP_CFG)"; then \
		install -m 0644 $(EP_CFG_SRC) "$(EP_CFG).default"; \
		echo "install: kept your $(EP_CFG); the shipped default is $(EP_CFG).default"; \
	else \
		install -m 0644 $(EP_CFG_SRC) "$(EP_CFG)"; \
		echo "install: default config $(EP_CFG) (no interfaces, no services yet)"; \
	fi
	@echo "install: done. Then: systemctl daemon-reload && systemctl enable --now edgeplane-agent"

# Removes exactly what install added. A config that differs from the shipped
# default is yours and stays. The datapath is not touched: programs stay
# attached and maps pinned (see the note printed at the end).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/edgeplane-agent $(DESTDIR)$(BINDIR)/edgeplane
	rm -f $(addprefix $(DESTDIR)$(EP_LIBDIR)/bpf/,$(notdir $(BPF_OBJS)))
	@rmdir $(DESTDIR)$(EP_LIBDIR)/bpf $(DESTDIR)$(EP_LIBDIR) 2>/dev/null || true
	rm -f $(DESTDIR)$(UNITDIR)/$(EP_UNIT)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(EP_MANS))
	rm -f "$(EP_CFG).default"
	@if [ -e "$(EP_CFG)" ] && ! cmp -s $(EP_CFG_SRC) "$(EP_CFG)"; then \
		echo "uninstall: kept $(EP_CFG): it differs from the shipped default"; \
	else \
		rm -f "$(EP_CFG)"; \
	fi
	@rmdir $(DESTDIR)$(SYSCONFDIR)/edgeplane 2>/dev/null || true
	@echo "uninstall: done. Attached XDP/TC programs and the maps pinned under datapath.bpffs"
	@echo "  (default /sys/fs/bpf/edgeplane) are left in place and keep forwarding. To remove"
	@echo "  them, stop the service and run the agent once with --detach-on-exit before"
	@echo "  uninstalling (edgeplane-agent --config FILE --detach-on-exit, then SIGTERM), or by"
	@echo "  hand: ip link set dev IFACE xdp off; tc filter del dev IFACE ingress pref 233;"
	@echo "  tc filter del dev IFACE egress pref 233; (and pref 228, 224 both ways);"
	@echo "  rm -r /sys/fs/bpf/edgeplane"
	@echo "  (docs/install.md, \"Removal\")."
