<?php
// The demo's PHP app, served by PHP-FPM through m2gw.
header('Content-Type: text/plain');
echo "Hello from PHP " . PHP_VERSION . " via PHP-FPM and m2gw\n";
echo "REQUEST_URI=" . $_SERVER['REQUEST_URI'] . "\n";
echo "SCRIPT_NAME=" . $_SERVER['SCRIPT_NAME'] . "\n";
echo "PATH_INFO=" . ($_SERVER['PATH_INFO'] ?? '') . "\n";
echo "QUERY_STRING=" . $_SERVER['QUERY_STRING'] . "\n";
