//go:build linux

package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux the watcher is told, not polling: the kernel wakes it when an
// address, link or route changes (rtnetlink) and when the computer resumes
// (a timerfd that is cancelled whenever the wall clock jumps, which a resume
// does). Idle, it is two goroutines parked in Go's netpoller, no timer.
// Where either is refused (an old kernel, a sandbox), the portable looks
// take its place.

// settle is how long the watcher lets a burst of rtnetlink messages go on
// before it compares (an address change comes with route changes); a burst
// that never ends is compared after settleMax.
const (
	settle    = 100 * time.Millisecond
	settleMax = 500 * time.Millisecond
	// pollEvery is the portable interface poll, used only if rtnetlink is
	// refused.
	pollEvery = 2 * time.Second
)

func systemNetSource(ctx context.Context, notify func(NetChange)) {
	resume, err := openResumeWatch()
	if err != nil {
		resume = sleepTicker(SystemClock{}, bootAndMonotonic, sleepLookEvery)
	}
	links, err := openNetlinkWatch()
	if err != nil {
		links = pollInterfaces(pollEvery)
	}
	mergeSources(resume, links)(ctx, notify)
}

// bootAndMonotonic: CLOCK_BOOTTIME counts suspended time, CLOCK_MONOTONIC
// does not; neither moves when someone sets the wall clock.
func bootAndMonotonic() (total, awake time.Duration) {
	var b, m unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
	return time.Duration(b.Nano()), time.Duration(m.Nano())
}

// openResumeWatch arms a timerfd on the wall clock, far in the future,
// with TFD_TIMER_CANCEL_ON_SET: its read fails with ECANCELED as soon as
// the wall clock jumps, which the kernel also signals on every resume
// (timekeeping_resume -> timerfd_resume). A jump is a resume only if
// CLOCK_BOOTTIME moved ahead of CLOCK_MONOTONIC; someone setting the clock
// is not reported.
func openResumeWatch() (netSource, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	arm := func() error {
		at, err := unix.TimeToTimespec(time.Now().AddDate(50, 0, 0))
		if err != nil { // a 32-bit time_t
			at, _ = unix.TimeToTimespec(time.Unix(math.MaxInt32, 0))
		}
		return unix.TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET,
			&unix.ItimerSpec{Value: at}, nil)
	}
	if err := arm(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f, err := pollable(fd, "timerfd")
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, notify func(NetChange)) {
		defer context.AfterFunc(ctx, func() { f.Close() })()
		defer f.Close()
		prevTotal, prevAwake := bootAndMonotonic()
		var buf [8]byte
		for {
			_, err := f.Read(buf[:])
			if ctx.Err() != nil {
				return
			}
			switch {
			case errors.Is(err, syscall.ECANCELED):
			case err == nil:
				// The far date came (or a 32-bit time_t wrapped): arm again.
			default:
				return
			}
			if err := arm(); err != nil {
				return // cannot happen once armed; without it the loop would spin
			}
			total, awake := bootAndMonotonic()
			if slept := (total - prevTotal) - (awake - prevAwake); slept >= minSleep {
				notify(NetChange{Woke: true, Slept: slept, Detail: "woke after " + roughly(slept)})
			}
			prevTotal, prevAwake = total, awake
		}
	}, nil
}

// openNetlinkWatch subscribes to rtnetlink's link, address and route
// groups. The messages themselves are not parsed: each burst leads to a
// fresh snapshot, compared with the last, so an address whose lifetime was
// merely renewed (DHCP, IPv6 router advertisements) is no change.
func openNetlinkWatch() (netSource, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
		unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f, err := pollable(fd, "rtnetlink")
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, notify func(NetChange)) {
		defer context.AfterFunc(ctx, func() { f.Close() })()
		defer f.Close()
		snap := takeSnapshot() // after the subscription: nothing falls in between
		buf := make([]byte, 16<<10)
		for {
			f.SetReadDeadline(time.Time{})
			if _, err := f.Read(buf); err != nil && !errors.Is(err, syscall.ENOBUFS) {
				return // closed (ENOBUFS: messages were lost, which is news too)
			}
			first := time.Now()
			for {
				f.SetReadDeadline(first.Add(min(time.Since(first)+settle, settleMax)))
				_, err := f.Read(buf)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if err != nil && !errors.Is(err, syscall.ENOBUFS) {
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			next := takeSnapshot()
			if ch, ok := next.diff(snap); ok {
				notify(ch)
			}
			snap = next
		}
	}, nil
}

// pollable wraps a non-blocking descriptor in a File that Go's netpoller
// waits on (no thread held), which closing it or a deadline interrupts; if
// the poller refuses it, the caller falls back to looking.
func pollable(fd int, name string) (*os.File, error) {
	f := os.NewFile(uintptr(fd), name)
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s cannot be polled: %w", name, err)
	}
	return f, nil
}

// routeDigest describes the main routing table (IPv4 and IPv6): a change of
// the default route, or of the route to the relay, changes the path even
// when no address does. Lifetimes and statistics are left out.
func routeDigest() string {
	tab, err := syscall.NetlinkRIB(syscall.RTM_GETROUTE, syscall.AF_UNSPEC)
	if err != nil {
		return ""
	}
	msgs, err := syscall.ParseNetlinkMessage(tab)
	if err != nil {
		return ""
	}
	var routes []string
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWROUTE || len(m.Data) < syscall.SizeofRtMsg {
			continue
		}
		// struct rtmsg: family, dst_len, src_len, tos, table, protocol,
		// scope, type (one byte each), then flags.
		family, dstLen, table, typ := m.Data[0], m.Data[1], uint32(m.Data[4]), m.Data[7]
		flags := binary.NativeEndian.Uint32(m.Data[8:12]) & (unix.RTNH_F_DEAD | unix.RTNH_F_LINKDOWN)
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		var dst, gw, src []byte
		var oif, prio uint32
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.RTA_TABLE:
				if len(a.Value) >= 4 {
					table = binary.NativeEndian.Uint32(a.Value)
				}
			case syscall.RTA_DST:
				dst = a.Value
			case syscall.RTA_GATEWAY:
				gw = a.Value
			case syscall.RTA_PREFSRC:
				src = a.Value
			case syscall.RTA_OIF:
				if len(a.Value) >= 4 {
					oif = binary.NativeEndian.Uint32(a.Value)
				}
			case syscall.RTA_PRIORITY:
				if len(a.Value) >= 4 {
					prio = binary.NativeEndian.Uint32(a.Value)
				}
			}
		}
		if table != syscall.RT_TABLE_MAIN {
			continue
		}
		routes = append(routes, fmt.Sprintf("%d %x/%d via %x dev %d src %x metric %d type %d flags %x",
			family, dst, dstLen, gw, oif, src, prio, typ, flags))
	}
	slices.Sort(routes)
	return strings.Join(routes, "\n")
}
