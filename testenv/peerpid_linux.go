package testenv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// peerPID finds which of pids owns the other end of c, a connection accepted
// on loopback: the kernel's socket table (/proc/net/tcp) gives the inode of
// the socket whose local address is c's remote one, and each candidate's
// /proc/<pid>/fd shows whether it holds that inode. It returns 0 when none
// does (a client that is not one of pids) or the tables cannot be read.
//
// This lets a proxy tell apart brokers that all connect from 127.0.0.1 without
// any cooperation from them.
func peerPID(c *net.TCPConn, pids []int) int {
	local, ok1 := c.RemoteAddr().(*net.TCPAddr) // the peer's local address
	remote, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || len(pids) == 0 {
		return 0
	}
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode = socketInode(table, local, remote); inode != "" {
			break
		}
	}
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if link, err := os.Readlink(dir + "/" + e.Name()); err == nil && link == want {
				return pid
			}
		}
	}
	return 0
}

// socketInode returns the inode of the socket in table (the format of
// /proc/net/tcp) with the given local and remote addresses, or "".
func socketInode(table string, local, remote *net.TCPAddr) string {
	b, err := os.ReadFile(table)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		if procAddrIs(f[1], local) && procAddrIs(f[2], remote) {
			return f[9]
		}
	}
	return ""
}

// procAddrIs reports whether s, an address as /proc/net/tcp writes it
// ("0100007F:1F90": the address as 32-bit words in host byte order, then the
// port), is addr. IPv4 addresses match their IPv4-mapped IPv6 form too.
func procAddrIs(s string, addr *net.TCPAddr) bool {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil || int(port) != addr.Port {
		return false
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || len(raw)%4 != 0 {
		return false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		// The kernel printed the integer it read from the address's
		// memory in host order; writing it back in host order gives
		// that memory, the address in network order.
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:i+4]))
	}
	return ip.Equal(addr.IP)
}
