"""OSC: the wire codec, the route table and the UDP server."""
