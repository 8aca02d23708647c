import t from 'tap';
import { VERSION } from '../lib/version.js';
t.match(VERSION, /^\d+\.\d+\.\d+/);
