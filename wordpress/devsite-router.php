<?php
/**
 * Router for PHP's built-in server on a devsite (wordpress/devsite.py, TEST SITES ONLY).
 *
 * A devsite's must-use plugins live outside the document root (Debian's /usr/share/wordpress),
 * so their static files (the bridge's editor scripts and styles) are served here, from the
 * folder in WPNOTIFY_DEVSITE_MU, at WPMU_PLUGIN_URL. Every other request goes on as without a
 * router (returning false).
 */
$path   = (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH );
$prefix = '/wp-content/mu-plugins/';
if ( strncmp( $path, $prefix, strlen( $prefix ) ) !== 0 ) {
	return false;
}
$root  = realpath( (string) getenv( 'WPNOTIFY_DEVSITE_MU' ) );
$file  = $root ? realpath( $root . '/' . rawurldecode( substr( $path, strlen( $prefix ) ) ) ) : false;
$types = array(
	'js'  => 'text/javascript; charset=utf-8',
	'css' => 'text/css; charset=utf-8',
);
$ext   = $file ? strtolower( pathinfo( $file, PATHINFO_EXTENSION ) ) : '';
if ( ! $file || strpos( $file, $root . '/' ) !== 0 || ! is_file( $file ) || ! isset( $types[ $ext ] ) ) {
	http_response_code( 404 );
	echo "Not found\n";
	return true;
}
header( 'Content-Type: ' . $types[ $ext ] );
header( 'Content-Length: ' . filesize( $file ) );
readfile( $file );
return true;
